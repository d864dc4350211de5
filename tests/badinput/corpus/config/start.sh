exec python3 worker.py
