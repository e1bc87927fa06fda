CREATE TABLE `invoices` (
	`payment_hash` text PRIMARY KEY NOT NULL,
	`job_id` text NOT NULL,
	`purpose` text NOT NULL,
	`amount_msats` integer NOT NULL,
	`bolt11` text NOT NULL,
	`status` text NOT NULL,
	`expires_at` integer NOT NULL,
	`paid_at` integer,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `invoices_status_expiry` ON `invoices` (`status`,`expires_at`);--> statement-breakpoint
CREATE INDEX `invoices_job` ON `invoices` (`job_id`);--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` integer NOT NULL,
	`source` text NOT NULL,
	`state` text NOT NULL,
	`customer_pubkey` text,
	`client_address` text,
	`request_json` text,
	`encryption` text DEFAULT 'none' NOT NULL,
	`input` text NOT NULL,
	`params_json` text DEFAULT '{}' NOT NULL,
	`relays_json` text DEFAULT '[]' NOT NULL,
	`bid_msats` integer,
	`eval_payment_hash` text,
	`work_payment_hash` text,
	`reason` text,
	`pricing_json` text,
	`result` text,
	`cost_ledger_json` text,
	`error_message` text,
	`request_created_at` integer NOT NULL,
	`expires_at` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `jobs_state` ON `jobs` (`state`);--> statement-breakpoint
CREATE INDEX `jobs_customer_state` ON `jobs` (`customer_pubkey`,`state`);--> statement-breakpoint
CREATE TABLE `kv` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `outbox` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`job_id` text,
	`intent_json` text NOT NULL,
	`event_id` text,
	`signed_json` text,
	`created_at` integer NOT NULL,
	`signed_at` integer,
	`acked_at` integer,
	`attempts` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE INDEX `outbox_acked` ON `outbox` (`acked_at`);--> statement-breakpoint
CREATE INDEX `outbox_job` ON `outbox` (`job_id`);--> statement-breakpoint
CREATE INDEX `outbox_event` ON `outbox` (`event_id`);--> statement-breakpoint
CREATE TABLE `outbox_acks` (
	`outbox_id` integer NOT NULL,
	`relay` text NOT NULL,
	`ok` integer NOT NULL,
	`message` text NOT NULL,
	`at` integer NOT NULL,
	PRIMARY KEY(`outbox_id`, `relay`)
);
--> statement-breakpoint
CREATE TABLE `stub_invoices` (
	`payment_hash` text PRIMARY KEY NOT NULL,
	`preimage` text NOT NULL,
	`bolt11` text NOT NULL,
	`amount_msats` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`paid_at` integer
);
