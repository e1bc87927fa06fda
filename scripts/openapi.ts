// Writes openapi.yaml from the served document (npm run openapi). A test fails when the file is stale.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { PACKAGE_ROOT } from '../src/config.ts';
import { openApiDocument } from '../src/http/openapi.ts';

const file = resolve(PACKAGE_ROOT, 'openapi.yaml');
writeFileSync(file, stringify(await openApiDocument()));
process.stdout.write(`wrote ${file}\n`);
