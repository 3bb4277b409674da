/*
 * The end of a browser test script (tests/75-browser.bats): its JSON summary to the file
 * GPS_RESULT names, or to stdout.
 */
import { writeFileSync } from 'node:fs';

export function write_result(summary)
{
	const out = JSON.stringify(summary, null, 2) + '\n';

	if (process.env.GPS_RESULT)
		writeFileSync(process.env.GPS_RESULT, out);
	else
		process.stdout.write(out);
}
