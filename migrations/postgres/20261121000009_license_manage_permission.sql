-- `license.manage` (the license page and `/api/v1/license`) is a core
-- permission new tenants give their admins by default. Give it to the
-- admins of tenants made before it existed, so no admin is locked out of
-- the license page (owners hold every permission anyway).
INSERT INTO role_permissions (tenant_id, role, permission)
SELECT id, 'admin', 'license.manage' FROM tenants
WHERE TRUE ON CONFLICT DO NOTHING;
