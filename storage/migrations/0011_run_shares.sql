-- Public share links of runs (LangSmith share_run). Sort key (tenant_id, run_id): the owner reads and changes a
-- run's share by id. The public read arrives with only the token, so a bloom filter on share_token finds it;
-- shares are few, and everything read after that is scoped to the share's tenant.
CREATE TABLE IF NOT EXISTS run_shares
(
    tenant_id UUID,
    run_id UUID,
    share_token UUID,
    trace_id UUID,
    session_id UUID,
    created_at DateTime64(6, 'UTC') DEFAULT now64(6),
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    INDEX idx_share_token share_token TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (tenant_id, run_id);
