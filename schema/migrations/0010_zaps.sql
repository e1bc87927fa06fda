CREATE TABLE `zaps` (
	`id` text PRIMARY KEY NOT NULL,
	`payment_hash` text NOT NULL,
	`sender_pubkey` text NOT NULL,
	`target_event_id` text,
	`target_job_id` text,
	`amount_msats` integer NOT NULL,
	`request_json` text NOT NULL,
	`relays_json` text NOT NULL,
	`outcome` text,
	`created_at` integer NOT NULL,
	`paid_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `zaps_payment_hash_unique` ON `zaps` (`payment_hash`);--> statement-breakpoint
CREATE INDEX `zaps_target_job` ON `zaps` (`target_job_id`);