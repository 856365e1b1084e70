-- Metadata filters name an entry, a key and its value (`and(eq(metadata_key, k), eq(metadata_value, v))`), and
-- the bloom filter on the values alone let through every granule where the value occurs under any key, plus its
-- false positives: 93 granules read for the 58 runs of one user id over 1M runs. An inverted index over each
-- value and each `key=value` pair finds exactly the granules of the entry. The expression must stay identical to
-- query.filter.compiler.METADATA_ENTRIES_SQL, which queries it with has(); `=` may also occur in keys and values,
-- so a match is a candidate that the filter's own condition on the map confirms. Measured on 1M runs: the keys
-- of that filter in 19.8 -> 15.7 ms; inserts cost the same as with the bloom filter (min of 15, ~30 µs of CPU per
-- run). The index of existing parts is built by a background mutation, and filters on them scan until it is.
ALTER TABLE runs ADD INDEX IF NOT EXISTS idx_metadata_entries arrayConcat(mapValues(metadata), arrayMap((k, v) -> concat(k, '=', v), mapKeys(metadata), mapValues(metadata))) TYPE text(tokenizer = array);
ALTER TABLE runs MATERIALIZE INDEX idx_metadata_entries;
ALTER TABLE runs DROP INDEX IF EXISTS idx_metadata_values;
