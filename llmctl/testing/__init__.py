"""Test helpers that ship with llmctl: real OpenSSH servers on loopback as stand-in GPU hosts."""
