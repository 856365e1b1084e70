-- Payload columns at ZSTD level 1 instead of 3. Every insert compresses them and every merge decompresses and
-- compresses them again, and they are most of a run's bytes. The same 100,000 OTLP spans, inserted and merged
-- into one part, cost 108-112 µs of ClickHouse CPU per row against 116-123 at level 3, 5 µs of it in the
-- insert (alternated, 4 rounds). Sizes: the same on random text, +4% on word-like text (0.382 against 0.367 of
-- the JSON). LZ4 cost 99-102 µs but stored random text 39% larger. Changing a codec rewrites nothing: parts
-- written or merged from now on use it.
ALTER TABLE runs
    MODIFY COLUMN error CODEC(ZSTD(1)),
    MODIFY COLUMN inputs CODEC(ZSTD(1)),
    MODIFY COLUMN outputs CODEC(ZSTD(1)),
    MODIFY COLUMN extra CODEC(ZSTD(1)),
    MODIFY COLUMN events CODEC(ZSTD(1)),
    MODIFY COLUMN serialized CODEC(ZSTD(1)),
    MODIFY COLUMN inputs_kv CODEC(ZSTD(1)),
    MODIFY COLUMN outputs_kv CODEC(ZSTD(1));
