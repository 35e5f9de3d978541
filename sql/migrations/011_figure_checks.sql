-- Figures that stay equal to the recount from the records (streams/recount.py).
-- Each interaction row names the events-topic partition that folded it, so a recount can
-- be split the way the stream's partial rows are (kpi_interval_parts.source_partition) and
-- a repaired row replaces exactly the row the stream would write. Rows stored before this
-- migration read 65535: unknown (streams/recount.py UNKNOWN_PARTITION).

ALTER TABLE {db}.interactions
    ADD COLUMN source_partition UInt16 DEFAULT 65535 COMMENT 'events-topic partition whose worker folded the contact' AFTER version;

-- Every difference the worker (or `ccpulse verify --repair` / `ccpulse recompute`) found
-- between a stored interval row and the recount of the records, and what it did about it.
CREATE TABLE IF NOT EXISTS {db}.figure_repairs
(
    found_at         {TS}    COMMENT 'when the difference was found (wall clock)',
    tenant           {LC},
    queue            {LC},
    channel          {LC},
    interval_start   {TS},
    source_partition UInt16,
    fields           Array(String) COMMENT 'the counts that differed',
    stored           Array(Int64)  COMMENT 'their stored values, in the order of fields',
    recounted        Array(Int64)  COMMENT 'their values recounted from the records',
    action           {LC}    COMMENT 'repaired | found (verify without repair)',
    source           {LC}    COMMENT 'worker | verify | recompute | late (history or late data past the lateness horizon)'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(found_at)
ORDER BY (found_at, tenant, queue, channel, interval_start);
