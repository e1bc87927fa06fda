CREATE TABLE `rate_hits` (
	`key` text NOT NULL,
	`at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `rate_hits_key_at` ON `rate_hits` (`key`,`at`);--> statement-breakpoint
ALTER TABLE `bootstrap_jobs` ADD `lease_owner` text;--> statement-breakpoint
ALTER TABLE `bootstrap_jobs` ADD `lease_until` integer;--> statement-breakpoint
ALTER TABLE `bootstrap_jobs` ADD `lease_epoch` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `bootstrap_working_lease` ON `bootstrap_jobs` (`lease_until`) WHERE state = 'provisioning';--> statement-breakpoint
ALTER TABLE `jobs` ADD `lease_owner` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `lease_until` integer;--> statement-breakpoint
ALTER TABLE `jobs` ADD `lease_epoch` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `jobs_working_lease` ON `jobs` (`lease_until`) WHERE state in ('evaluating', 'executing');