-- Document frequency of every full-text term, kept by triggers, so search
-- can leave out terms so common that matching them would scan most chunks
-- (Chinese bigrams like 怎么 or English words like "order").
CREATE TABLE term_stats (
    lexeme text PRIMARY KEY,
    df     integer NOT NULL
);

CREATE FUNCTION chunks_term_stats() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO term_stats (lexeme, df)
            SELECT lexeme, 1 FROM unnest(NEW.tsv)
            ON CONFLICT (lexeme) DO UPDATE SET df = term_stats.df + 1;
        RETURN NEW;
    END IF;
    UPDATE term_stats t SET df = t.df - 1 FROM unnest(OLD.tsv) u WHERE t.lexeme = u.lexeme;
    RETURN OLD;
END $$;

CREATE TRIGGER chunks_term_stats_ins AFTER INSERT ON chunks FOR EACH ROW EXECUTE FUNCTION chunks_term_stats();
CREATE TRIGGER chunks_term_stats_del AFTER DELETE ON chunks FOR EACH ROW EXECUTE FUNCTION chunks_term_stats();

INSERT INTO term_stats (lexeme, df)
    SELECT lexeme, count(*) FROM chunks, unnest(tsv) GROUP BY lexeme;
