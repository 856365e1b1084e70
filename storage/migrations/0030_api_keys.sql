-- Tenants (workspaces) and the API keys that reach them. Keys are stored as SHA-256 hashes only; `prefix` (the
-- first characters of the key) identifies a key in listings and revocation without revealing it.
-- Sort keys: tenants by id; api_keys by key_hash, since every authenticated request looks a key up by its hash
-- (cached in memory by the server for a short time).
CREATE TABLE IF NOT EXISTS tenants
(
    id UUID,
    name String,
    created_at DateTime64(6, 'UTC') DEFAULT now64(6),
    version UInt64,
    is_deleted UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY id;

CREATE TABLE IF NOT EXISTS api_keys
(
    key_hash String,
    id UUID,
    prefix String,
    tenant_ids Array(UUID),
    created_at DateTime64(6, 'UTC') DEFAULT now64(6),
    revoked_at Nullable(DateTime64(6, 'UTC')),
    version UInt64,
    is_deleted UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY key_hash;
