"""gate_mw in a Litestar app: see app.py, and demo.py to watch it run."""
