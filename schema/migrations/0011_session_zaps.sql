ALTER TABLE `zaps` ADD `target_session_id` text;--> statement-breakpoint
ALTER TABLE `zaps` ADD `target_payment_hash` text;