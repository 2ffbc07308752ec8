-- term_stats kept per statement instead of per row. retrieval.Index.Write
-- inserts a document's chunks with one INSERT per thousand rows, so one
-- aggregated upsert per statement replaces one upsert per chunk: loading a
-- 5,172-row FAQ sheet spent about a quarter of its time in the per-row
-- trigger. The counts are the same: each chunk adds (or, deleted, takes
-- away) one for every distinct lexeme of its tsvector. Lexemes are upserted
-- in sorted order, so concurrent loads lock term_stats rows in one order.
DROP TRIGGER chunks_term_stats_ins ON chunks;
DROP TRIGGER chunks_term_stats_del ON chunks;
DROP FUNCTION chunks_term_stats();

CREATE FUNCTION chunks_term_stats_ins() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO term_stats (lexeme, df)
        SELECT u.lexeme, count(*) FROM new_chunks, unnest(new_chunks.tsv) u GROUP BY u.lexeme ORDER BY u.lexeme
        ON CONFLICT (lexeme) DO UPDATE SET df = term_stats.df + EXCLUDED.df;
    RETURN NULL;
END $$;

CREATE FUNCTION chunks_term_stats_del() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE term_stats t SET df = t.df - d.n
        FROM (SELECT u.lexeme, count(*) AS n FROM old_chunks, unnest(old_chunks.tsv) u GROUP BY u.lexeme) d
        WHERE t.lexeme = d.lexeme;
    RETURN NULL;
END $$;

CREATE TRIGGER chunks_term_stats_ins AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION chunks_term_stats_ins();
CREATE TRIGGER chunks_term_stats_del AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION chunks_term_stats_del();
