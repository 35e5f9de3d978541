-- Forecasts per queue and half hour, and the agents they need (streams/domain/planning.py),
-- recomputed by the worker every CCPULSE_FORECAST_INTERVAL_S; the newest computation wins.

CREATE TABLE IF NOT EXISTS {db}.forecasts
(
    tenant           {LC},
    queue            {LC},
    interval_start   {TS}      COMMENT 'the half hour, UTC',
    day              Date      COMMENT 'the tenant''s business day',
    offered          Nullable(Float64) COMMENT 'contacts forecast (NULL: too little history, see note)',
    offered_low      Nullable(Float64) COMMENT '90 % prediction band, low',
    offered_high     Nullable(Float64) COMMENT '90 % prediction band, high',
    aht_s            Nullable(Float64) COMMENT 'handle time forecast',
    required_agents  Nullable(UInt32)  COMMENT 'Erlang A for the queue''s goal and its history''s patience',
    note             String,
    version          UInt64    COMMENT 'when it was computed (ms): the newest computation wins'
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(interval_start)
ORDER BY (tenant, queue, interval_start);
