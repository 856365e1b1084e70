-- Runs that so far only have a patch (patch before post). They are kept out of `runs`, so readers never see a
-- half-merged run, and are merged when the post arrives (then tombstoned here). `state` is the merged JSON.
-- Sort key (tenant_id, id): read back by id only.
CREATE TABLE IF NOT EXISTS pending_runs
(
    tenant_id UUID,
    id UUID,
    state String CODEC(ZSTD(3)),
    version UInt64,
    is_deleted UInt8 DEFAULT 0,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (tenant_id, id)
TTL toDateTime(updated_at) + toIntervalDay(14);
