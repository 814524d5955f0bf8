-- asterisk-recorder consent ledger, schema version 3: facts about decisions.
-- A fact (call.handed_back, call.hand_back_failed, call.fate, recording.*) is chained in the same
-- sequence as decisions and audit events. Never edit this file once released.

CREATE TABLE ledger_facts (
    seq bigint PRIMARY KEY,
    fact_id uuid NOT NULL UNIQUE,
    kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' AND length(kind) <= 64),
    -- the decision the fact is about; the ledger refuses a fact naming an unknown decision
    decision_id uuid REFERENCES decisions (decision_id),
    at timestamptz NOT NULL,
    actor text NOT NULL CHECK (length(actor) BETWEEN 1 AND 256),
    -- canonical JSON text (sorted keys, ASCII), exactly as hashed; query it as payload::jsonb
    payload text NOT NULL CHECK (octet_length(payload) <= 32768),
    text_notes jsonb NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_facts_decision_idx ON ledger_facts (decision_id);
CREATE INDEX ledger_facts_kind_at_idx ON ledger_facts (kind, at);

CREATE TRIGGER facts_append_only BEFORE UPDATE OR DELETE ON ledger_facts
    FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER facts_no_truncate BEFORE TRUNCATE ON ledger_facts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_append_only();

GRANT SELECT, INSERT ON ledger_facts TO asterisk_recorder_app;
