"""What a reader sees: figures, tables, disclosure control and the run report. Reads saved results; never fits."""
