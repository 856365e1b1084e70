-- Public share links of threads (LangSmith's thread share). Sort key (tenant_id, session_id, thread_id): the
-- owner reads and changes the share of a project's thread by its id. A public read would arrive with only the
-- token, so a bloom filter on share_token finds it, as for run_shares.
CREATE TABLE IF NOT EXISTS thread_shares
(
    tenant_id UUID,
    session_id UUID,
    thread_id String,
    share_token UUID,
    created_at DateTime64(6, 'UTC') DEFAULT now64(6),
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    INDEX idx_share_token share_token TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (tenant_id, session_id, thread_id);
