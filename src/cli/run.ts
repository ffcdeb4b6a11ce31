import { main } from './main.js';

main().then((code) => process.exit(code));
