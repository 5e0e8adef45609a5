-- What each outbox row stands for. After grouping, one notification (one row of
-- `notifications`) carries many cases; every original (case, reason, occasion, receiver,
-- address) it stands for is a member, keyed by its dedup key. The keys make enqueueing
-- idempotent per member (a restart or a second worker never enqueues the same member twice,
-- grouped or not), and the case ids let the API list a grouped notification under every case
-- and let an SMS reply acknowledge all the cases of the message it answers.
CREATE TABLE notification_members (
    dedup_key        text PRIMARY KEY,
    notification_id  uuid NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
    case_id          bigint REFERENCES cases(id) ON DELETE CASCADE
);
CREATE INDEX notification_members_notification_idx ON notification_members (notification_id);
CREATE INDEX notification_members_case_idx ON notification_members (case_id);

-- An SMS reply is matched to the latest message sent to its number.
CREATE INDEX notifications_target_idx ON notifications (channel, target, created_at DESC);

-- The metrics' outbox depth and oldest-undelivered age read only pending rows.
CREATE INDEX notifications_pending_created_idx ON notifications (created_at) WHERE state = 'pending';
