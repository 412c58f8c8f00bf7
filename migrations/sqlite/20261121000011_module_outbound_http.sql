-- Outbound HTTP of modules: what an administrator opened beyond the
-- manifest's `allowed_outbound_hosts`, per module for the whole install
-- (like `accepted_capabilities`: the network the server sits in is the
-- operator's, not a tenant's). Each is a JSON array of host patterns in the
-- manifest's syntax (`https://pve.lan:8006`). Columns of `modules`, so they
-- survive an upgrade and go with an uninstall.

-- Requests matching one of these may connect to private, loopback and
-- link-local addresses (otherwise refused against SSRF).
ALTER TABLE modules ADD COLUMN outbound_private_hosts TEXT NOT NULL DEFAULT '[]';

-- Requests matching one of these skip TLS certificate verification
-- (self-signed Proxmox or Plesk hosts).
ALTER TABLE modules ADD COLUMN outbound_insecure_tls_hosts TEXT NOT NULL DEFAULT '[]';
