// Validates an OpenAPI description (3.0 or 3.1) against its specification's schema and resolves
// every $ref, with @apidevtools/swagger-parser: `node validate-openapi.mjs FILE`.
import SwaggerParser from '@apidevtools/swagger-parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate-openapi.mjs FILE');
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  const operations = Object.values(api.paths).reduce((n, item) => n + Object.keys(item).length, 0);
  console.log(`openapi: valid ${api.openapi}, ${Object.keys(api.paths).length} paths, ${operations} operations`);
} catch (e) {
  console.error(`openapi: INVALID ${file}: ${e.message}`);
  process.exit(1);
}
