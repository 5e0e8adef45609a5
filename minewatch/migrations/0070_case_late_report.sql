-- A case opened from a finding already older than the late-report age when first found (a
-- back-fill, a late upload): recorded, routed and listed like any case, but without the
-- urgent ack-window escalation (alerting.cases, alerting.escalation; docs/alerting.md).
ALTER TABLE cases ADD COLUMN IF NOT EXISTS late_report boolean NOT NULL DEFAULT false;
