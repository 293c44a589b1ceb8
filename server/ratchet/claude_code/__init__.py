"""Claude Code's edge: its hook events decided by the gate, and the resident hook server that answers them."""
