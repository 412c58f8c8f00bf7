-- The dashboard lists a tenant's newest timeline entries across customers;
-- ids are UUIDv7, so (tenant_id, id) orders them by time.
CREATE INDEX activities_tenant_recent_idx ON activities (tenant_id, id);
