"""The fleet over SSH (asyncssh) and locally: transports, facts, provisioning."""

# Where known host keys are read from, when set: named here so that the CLI can say so without loading SSH.
KNOWN_HOSTS_ENV = "LLMCTL_KNOWN_HOSTS"
