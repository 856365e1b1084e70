-- Full-text index for the filter language's search("text"): one inverted index over the run's name, error,
-- metadata values and flattened input/output values, lower-cased ASCII and split on non-alphanumeric ASCII
-- characters. The expression must stay identical to query.filter.compiler.SEARCH_SQL, which queries it with
-- hasAllTokens(). The flattened *_kv values (at most 1,000 characters each) are used instead of the raw JSON so
-- that offloaded payloads are searchable too and JSON keys do not match as words.
ALTER TABLE runs ADD INDEX IF NOT EXISTS idx_search lower(concat(name, ' ', ifNull(error, ''), ' ', arrayStringConcat(mapValues(metadata), ' '), ' ', arrayStringConcat(mapValues(inputs_kv), ' '), ' ', arrayStringConcat(mapValues(outputs_kv), ' '))) TYPE text(tokenizer = splitByNonAlpha);
