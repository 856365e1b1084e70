-- Presigned feedback tokens (LangSmith create_presigned_feedback_token): a token lets anyone holding its URL
-- leave feedback of one key on one run until it expires. Sort key (tenant_id, id) for the owner's reads; the
-- public endpoint arrives with only the token id, found through the bloom filter (tokens are few).
CREATE TABLE IF NOT EXISTS feedback_tokens
(
    tenant_id UUID,
    id UUID,
    run_id UUID,
    feedback_key String,
    feedback_config Nullable(String),
    expires_at Nullable(DateTime64(6, 'UTC')),
    created_at DateTime64(6, 'UTC') DEFAULT now64(6),
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    INDEX idx_token id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (tenant_id, id);
