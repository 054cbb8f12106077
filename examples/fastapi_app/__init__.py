"""gate_mw in a FastAPI app: see app.py, and demo.py to watch it run."""
