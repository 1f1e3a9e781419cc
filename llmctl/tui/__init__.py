"""`llmctl tui`: a Textual dashboard over the state store. It reads the store in a worker thread on an
interval and never reaches a host: actions become intents the controller carries out."""
