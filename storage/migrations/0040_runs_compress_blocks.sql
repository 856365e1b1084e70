-- Smaller compression blocks for `runs`. A block is at least min_compress_block_size (default 64 KiB) of
-- uncompressed data, so with 256-row granules (0001) a narrow column's block spans many granules, and reading
-- one granule decompresses all of them: for the ~35 columns of a run read, that cost more than the payloads.
-- 4 KiB keeps a block to about one granule of a narrow column; 64 KiB caps the payload columns' blocks.
-- Measured on 1M runs: the rows of a 58-run page 90 -> 48-62 ms at 256-row granules (125-160 ms at 2,048),
-- raw insert rate unchanged, 9% more compressed bytes. Unlike the granularity this setting can be changed, so
-- existing tables get it too, for parts written or merged from now on.
ALTER TABLE runs MODIFY SETTING min_compress_block_size = 4096, max_compress_block_size = 65536;
