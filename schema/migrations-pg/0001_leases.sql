CREATE TABLE "rate_hits" (
	"key" text NOT NULL,
	"at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "bootstrap_jobs" ADD COLUMN "lease_owner" text;--> statement-breakpoint
ALTER TABLE "bootstrap_jobs" ADD COLUMN "lease_until" bigint;--> statement-breakpoint
ALTER TABLE "bootstrap_jobs" ADD COLUMN "lease_epoch" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "lease_owner" text;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "lease_until" bigint;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "lease_epoch" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX "rate_hits_key_at" ON "rate_hits" USING btree ("key","at");--> statement-breakpoint
CREATE INDEX "bootstrap_working_lease" ON "bootstrap_jobs" USING btree ("lease_until") WHERE state = 'provisioning';--> statement-breakpoint
CREATE INDEX "jobs_working_lease" ON "jobs" USING btree ("lease_until") WHERE state in ('evaluating', 'executing');