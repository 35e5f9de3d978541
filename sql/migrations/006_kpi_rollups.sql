-- Coarser intervals, all sums of the 15-minute figures (so they agree with them exactly).
-- 30 and 60 minutes are UTC-aligned, which is the tenant's own alignment in every time zone
-- with a whole-hour offset; days follow each tenant's time zone and daily reset.

-- 30-minute intervals.
CREATE VIEW IF NOT EXISTS {db}.kpi_intervals_30m AS
SELECT
    *,
    {KPI_RATIOS}
FROM
(
    SELECT
        tenant, queue, channel, toDateTime(intDiv(toUInt32(interval_start), 1800) * 1800, 'UTC') AS interval_start,
        {KPI_SUMS},
        max(max_wait_ms) AS max_wait_ms,
        max(sl_threshold_s) AS sl_threshold_s
    FROM {db}.kpi_intervals_15m
    GROUP BY tenant, queue, channel, interval_start
);

-- Hours.
CREATE VIEW IF NOT EXISTS {db}.kpi_intervals_1h AS
SELECT
    *,
    {KPI_RATIOS}
FROM
(
    SELECT
        tenant, queue, channel, toDateTime(intDiv(toUInt32(interval_start), 3600) * 3600, 'UTC') AS interval_start,
        {KPI_SUMS},
        max(max_wait_ms) AS max_wait_ms,
        max(sl_threshold_s) AS sl_threshold_s
    FROM {db}.kpi_intervals_15m
    GROUP BY tenant, queue, channel, interval_start
);

-- Days in each tenant's time zone, from its daily reset.
CREATE VIEW IF NOT EXISTS {db}.kpi_daily AS
SELECT
    *,
    {KPI_RATIOS}
FROM
(
    SELECT
        tenant, queue, channel, local_day AS local_day,
        {KPI_SUMS},
        max(max_wait_ms) AS max_wait_ms,
        max(sl_threshold_s) AS sl_threshold_s
    FROM {db}.kpi_intervals_15m
    GROUP BY tenant, queue, channel, local_day
);

-- Today: each tenant's current business day (the newest day it has figures for).
CREATE VIEW IF NOT EXISTS {db}.kpi_today AS
SELECT *
FROM {db}.kpi_daily
WHERE (tenant, local_day) IN (SELECT tenant, max(local_day) FROM {db}.kpi_interval_parts GROUP BY tenant);
