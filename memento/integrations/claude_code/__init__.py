"""Claude Code: the hooks that hand it memories (``hooks``) and the installer that wires
them and the MCP server into its settings (``install``)."""
