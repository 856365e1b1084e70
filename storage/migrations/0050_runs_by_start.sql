-- Where each run lives, by start time: (tenant_id, start_time, id) -> its project. The batcher looks up every
-- run id of a batch it has not cached, to merge onto a stored state, and almost all of them are new. In
-- `run_ids` (sorted by id) a batch's random ids select nearly every granule, so that lookup grew with all runs
-- kept: 5,000 ids took 20 ms at 60,000 rows and 609 ms at 30 million (tests/bench/lookups.py). Posts carry
-- their start time and the SDK's patches their dotted order, so here a batch reads only the seconds around
-- its runs' start times, whatever the table's size. Ops without a start time still go through `run_ids`.
-- trace_id is kept so that deleting a trace removes its rows here as from `run_ids`.
CREATE TABLE IF NOT EXISTS runs_by_start
(
    tenant_id UUID,
    start_time DateTime64(6, 'UTC'),
    id UUID,
    session_id UUID,
    trace_id UUID,
    version UInt64,
    is_deleted UInt8
)
ENGINE = ReplacingMergeTree(version, is_deleted)
ORDER BY (tenant_id, start_time, id);

CREATE MATERIALIZED VIEW IF NOT EXISTS runs_by_start_mv TO runs_by_start AS
SELECT tenant_id, start_time, id, session_id, trace_id, version, is_deleted FROM runs;

-- Runs stored before this migration; a run written meanwhile lands twice with one version, which collapses. It
-- reads all of run_ids once: 1.7 M rows/s embedded on 2 cores (10 M rows in 6 s), so ~10 minutes per billion
-- runs kept, during which `tracehouse migrate` (the migration Job in deploy/) does not return.
INSERT INTO runs_by_start SELECT tenant_id, start_time, id, session_id, trace_id, version, is_deleted FROM run_ids;
