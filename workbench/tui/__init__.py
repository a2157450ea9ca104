"""The Textual workbench. Nothing here imports torch at start: the first screen is drawn before it loads."""
