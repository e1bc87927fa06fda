CREATE TABLE `credits` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`account` text NOT NULL,
	`delta_msats` integer NOT NULL,
	`reason` text NOT NULL,
	`job_id` text,
	`ref` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `credits_ref_unique` ON `credits` (`ref`);--> statement-breakpoint
CREATE INDEX `credits_account` ON `credits` (`account`);--> statement-breakpoint
ALTER TABLE `jobs` ADD `eval_credit_msats` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `jobs` ADD `work_credit_msats` integer DEFAULT 0 NOT NULL;