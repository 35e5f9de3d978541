-- Agents needed now, per queue: Erlang A on the last rolling window's contacts (streams/worker/
-- flows/planning.py, every minute), beside the agents available at that moment.

CREATE TABLE IF NOT EXISTS {db}.staffing_live
(
    tenant            {LC},
    queue             {LC},
    window_minutes    UInt32,
    offered           UInt64   COMMENT 'contacts offered in the window',
    aht_s             Nullable(Float64),
    patience_s        Nullable(Float64) COMMENT 'mean patience from the window''s abandons and waits',
    required_agents   Nullable(UInt32)  COMMENT 'Erlang A for the queue''s goal at the window''s rate',
    available         UInt32   COMMENT 'agents of the queue ready, busy or in after-call work now',
    expected_sl       Nullable(Float64) COMMENT 'the service level the available agents can be expected to give',
    expected_abandon  Nullable(Float64),
    note              String,
    snapshot_at       {TS},
    version           UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant, queue);
