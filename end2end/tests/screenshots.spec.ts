import { test } from "@playwright/test";
import { adminPage, hydrated } from "./helpers";

// Screenshots of the main pages at phone and desktop widths, kept as test artifacts in
// end2end/artifacts/ (the README shows some of them).
const widths = [
  { name: "phone", width: 360, height: 780 },
  { name: "desktop", width: 1280, height: 860 },
];

test("screenshots of the main pages", async ({ browser }) => {
  const admin = await adminPage(browser);
  const state = await admin.context().storageState();
  for (const w of widths) {
    const anon = await browser.newPage({ viewport: { width: w.width, height: w.height } });
    for (const [name, path] of [["home", "/"], ["signin", "/signin"], ["signup", "/signup"], ["book", "/book"], ["book-times", "/book/1"]]) {
      await anon.goto(path);
      await hydrated(anon);
      await anon.screenshot({ path: `artifacts/${name}-${w.name}.png`, fullPage: true });
    }
    await anon.close();
    const page = await browser.newPage({ viewport: { width: w.width, height: w.height }, storageState: state });
    for (const [name, path] of [["admin-overview", "/admin"], ["admin-integrations", "/admin/integrations"], ["admin-mail", "/admin/mail"], ["admin-people", "/admin/people"], ["admin-setup", "/admin/setup"], ["admin-bookings", "/admin/bookings"], ["week", "/staff"]]) {
      await page.goto(path);
      await hydrated(page);
      await page.screenshot({ path: `artifacts/${name}-${w.name}.png`, fullPage: true });
    }
    await page.close();
  }
});
