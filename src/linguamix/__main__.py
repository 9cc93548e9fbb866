from .cli import main

if __name__ == "__main__":  # vLLM (multiprocessing) re-imports the main module in its engine process
    raise SystemExit(main())
