-- Billable talk minutes (each contact's talk rounded up to the minute) kept by the stream
-- with the other additive counts, so billing per started minute reads the interval tables
-- instead of every contact. Rows written before this migration read 0.

ALTER TABLE {db}.kpi_interval_parts
    ADD COLUMN billable_talk_minutes UInt64 DEFAULT 0 COMMENT 'talk of handled contacts rounded up to the minute per contact, summed' AFTER first_response_ms;

ALTER TABLE {db}.kpi_live_parts
    ADD COLUMN billable_talk_minutes UInt64 DEFAULT 0 COMMENT 'talk of handled contacts rounded up to the minute per contact, summed' AFTER first_response_ms;
