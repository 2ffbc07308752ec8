-- Recording an unanswered question looks for the nearest open group by
-- the question's vector. Without an index that compared the question with
-- every open group, reading each group's vector (4 KB, stored out of line),
-- so it grew with the report: 22 to 56 ms a question in the burst's
-- statement log. An HNSW index over the open groups' vectors (the local
-- embedder's 1,024 dimensions, which grouping always uses) finds the
-- nearest in a few page reads.
--
-- Each question asked again updates its group's count and last_seen. The
-- report's index on those two columns made every such update write a new
-- entry into each index of the table, the HNSW index included; without it
-- the update stays on its page (HOT) and touches no index. The report
-- sorts the open groups itself (a few thousand at most), and the fill
-- factor leaves room on each page for the new row versions.
DROP INDEX unanswered_open_idx;
ALTER TABLE unanswered SET (fillfactor = 70);
CREATE INDEX unanswered_open_nearest_idx ON unanswered
    USING hnsw ((embedding::vector(1024)) vector_cosine_ops)
    WHERE resolved_at IS NULL AND vector_dims(embedding) = 1024;
