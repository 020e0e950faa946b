-- Provider rate-limit budgets, shared by every worker: one row per connection (or per
-- provider for the deployment's default credentials), kept current from the providers'
-- X-RateLimit-Remaining / X-RateLimit-Reset headers.
-- depends: 0003_rollups

CREATE TABLE rate_budgets (
    key         text PRIMARY KEY,
    remaining   integer NOT NULL,
    reset_at    timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
