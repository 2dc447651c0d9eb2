from watcher.cli import main

# Guarded: extraction workers import the main module when they start.
if __name__ == "__main__":
    main()
