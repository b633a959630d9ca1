-- OpenDSR (docs/opendsr.md): requests received from controllers, mapped onto subject_requests.
-- Nothing here names the person: the identity is sealed in the subject request, and only the
-- SHA-256 of the controller's body is kept (to answer a re-sent request identically).
CREATE TABLE opendsr_requests (
    subject_request_id TEXT PRIMARY KEY NOT NULL,
    request_id         TEXT NOT NULL UNIQUE REFERENCES subject_requests (id),
    controller_id      TEXT NOT NULL,
    body_sha256        TEXT NOT NULL,
    callback_urls      TEXT NOT NULL,
    base_url           TEXT NOT NULL,
    received_at        TIMESTAMP NOT NULL,
    announced_status   TEXT NOT NULL
);

-- Status callbacks, kept until delivered (at least once, surviving restarts): the body (signed
-- when sent; statuses, times, counts and URLs, no personal data), retried with backoff.
CREATE TABLE opendsr_callbacks (
    id                 TEXT PRIMARY KEY NOT NULL,
    subject_request_id TEXT NOT NULL REFERENCES opendsr_requests (subject_request_id),
    url                TEXT NOT NULL,
    body               TEXT NOT NULL,
    attempts           INTEGER NOT NULL,
    next_attempt_at    TIMESTAMP NOT NULL,
    delivered_at       TIMESTAMP,
    failed_at          TIMESTAMP,
    last_error         TEXT,
    created_at         TIMESTAMP NOT NULL
);
CREATE INDEX opendsr_callbacks_due ON opendsr_callbacks (next_attempt_at);

-- The processor's signing identity when none is configured: a development certificate made on
-- first start, its private key sealed under a key derived from the root secret.
CREATE TABLE opendsr_identity (
    name            TEXT PRIMARY KEY NOT NULL,
    certificate_pem TEXT NOT NULL,
    private_key_ct  BLOB NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
