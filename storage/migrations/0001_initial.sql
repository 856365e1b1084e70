-- Projects (LangSmith "sessions"). Few rows per tenant, read by id or by name.
-- Sort key (tenant_id, id): every read is tenant-scoped and most are by id; names are resolved through a
-- cached scan of the tenant's projects. Updates are re-inserts with a higher version.
CREATE TABLE IF NOT EXISTS projects
(
    tenant_id UUID,
    id UUID,
    name String,
    description Nullable(String),
    extra String DEFAULT '{}' CODEC(ZSTD(3)),
    start_time DateTime64(6, 'UTC'),
    end_time Nullable(DateTime64(6, 'UTC')),
    reference_dataset_id Nullable(UUID),
    short_ttl_days Nullable(UInt16),
    long_ttl_days Nullable(UInt16),
    created_at DateTime64(6, 'UTC') DEFAULT now64(6),
    version UInt64,
    is_deleted UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (tenant_id, id);

-- Runs, one row per version of a run; readers use FINAL.
-- Sort key (tenant_id, session_id, start_time, id): the most important query is "runs of a project in a time
-- range, newest first", which becomes a contiguous range of the key read in reverse order. All four columns
-- are fixed for the life of a run (a patch never moves a run to another project or changes its start), so
-- every version of a run lands on the same key and in the same monthly partition, which ReplacingMergeTree
-- needs to collapse them. Lookups by id and trace_id go through bloom filters and the run_ids table below.
CREATE TABLE IF NOT EXISTS runs
(
    tenant_id UUID,
    session_id UUID,
    id UUID,
    trace_id UUID,
    parent_run_id Nullable(UUID),
    parent_run_ids Array(UUID),
    dotted_order String,
    is_root Bool,
    name String,
    run_type LowCardinality(String),
    status LowCardinality(String),
    start_time DateTime64(6, 'UTC'),
    end_time Nullable(DateTime64(6, 'UTC')),
    first_token_time Nullable(DateTime64(6, 'UTC')),
    error Nullable(String) CODEC(ZSTD(3)),
    -- JSON text of each payload; empty when offloaded to the blob store (see payload_refs).
    inputs String CODEC(ZSTD(3)),
    outputs Nullable(String) CODEC(ZSTD(3)),
    extra String CODEC(ZSTD(3)),
    events String CODEC(ZSTD(3)),
    serialized Nullable(String) CODEC(ZSTD(3)),
    -- payload name (inputs/outputs/events/extra) -> blob key, for payloads above the offload threshold.
    payload_refs Map(LowCardinality(String), String),
    -- attachment name -> JSON {"key", "mime_type", "size"} in the blob store.
    attachments Map(String, String),
    tags Array(String),
    -- Flattened for filters: metadata top-level keys, and leaf paths of inputs/outputs (dotted), values as text.
    metadata Map(String, String),
    inputs_kv Map(String, String) CODEC(ZSTD(3)),
    outputs_kv Map(String, String) CODEC(ZSTD(3)),
    thread_id String,
    reference_example_id Nullable(UUID),
    prompt_tokens UInt64,
    completion_tokens UInt64,
    total_tokens UInt64,
    prompt_cost Nullable(Float64),
    completion_cost Nullable(Float64),
    total_cost Nullable(Float64),
    prompt_token_details String DEFAULT '',
    completion_token_details String DEFAULT '',
    prompt_cost_details String DEFAULT '',
    completion_cost_details String DEFAULT '',
    -- Retention: rows expire ttl_days after they were written (not after start_time, so importing old traces
    -- does not drop them on arrival); raised to the long-lived period when a trace gets feedback.
    ttl_days UInt16 DEFAULT 14,
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_thread_id thread_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_tags tags TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_metadata_keys mapKeys(metadata) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_metadata_values mapValues(metadata) TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(start_time)
ORDER BY (tenant_id, session_id, start_time, id)
TTL toDateTime(inserted_at) + toIntervalDay(ttl_days)
-- 256-row granules: a read of a few scattered runs (a selective filter's page, a run by id) decompresses whole
-- granules of every selected column, and rows are wide (~1.7 KB of payload each). Measured on 1M runs, with
-- the compression block sizes of 0040: the rows of a 58-run metadata match read in 48-62 ms instead of
-- 120-160 ms at 2,048 rows (read_rows 350,000 -> 60,000), search() 170 -> 91 ms; newest roots, the 1,000-run
-- tree and run by id unchanged, raw insert rate unchanged, 9% more compressed bytes. Granularity cannot be
-- ALTERed: data directories created before this change keep 2,048-row granules (recreate them to benefit).
SETTINGS index_granularity = 256;

-- Where each run lives: (tenant_id, id) -> its key in `runs`. GET /runs/{id}, patches arriving in a later
-- batch and trace lookups (a root's id is its trace id) read one granule here instead of probing every
-- project's part of `runs`. Kept by the materialized view, so writers insert into `runs` only.
CREATE TABLE IF NOT EXISTS run_ids
(
    tenant_id UUID,
    id UUID,
    session_id UUID,
    start_time DateTime64(6, 'UTC'),
    trace_id UUID,
    version UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (tenant_id, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS run_ids_mv TO run_ids AS
SELECT tenant_id, id, session_id, start_time, trace_id, version, is_deleted FROM runs;

-- Feedback. Sort key (tenant_id, run_id, key, id): run_id never changes for a feedback row, per-run stats
-- and "feedback of these runs" (stats over a filtered run set, joined through run_id IN (...)) read
-- contiguous ranges; project-level feedback without a run uses the nil UUID.
CREATE TABLE IF NOT EXISTS feedback
(
    tenant_id UUID,
    run_id UUID,
    key String,
    id UUID,
    trace_id Nullable(UUID),
    session_id Nullable(UUID),
    score Nullable(Float64),
    value Nullable(String),
    comment Nullable(String),
    correction Nullable(String),
    feedback_source String DEFAULT '{}',
    source_type LowCardinality(String) DEFAULT 'api',
    feedback_config Nullable(String),
    extra Nullable(String),
    error Bool DEFAULT false,
    comparative_experiment_id Nullable(UUID),
    feedback_group_id Nullable(UUID),
    start_time Nullable(DateTime64(6, 'UTC')),
    created_at DateTime64(6, 'UTC'),
    modified_at DateTime64(6, 'UTC'),
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    INDEX idx_id id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (tenant_id, run_id, key, id);
