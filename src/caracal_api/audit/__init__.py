"""Admin audit: records written with each change, the hash chain, and its verification."""
