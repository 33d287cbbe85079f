import { chromium, FullConfig, expect } from "@playwright/test";
import { ADMIN_STATE, admin, signIn } from "./tests/helpers";
import * as fs from "node:fs";

/** Signs the admin in once (password and authenticator code) and saves the browser state. */
export default async function globalSetup(config: FullConfig) {
  const use = config.projects[0].use;
  const browser = await chromium.launch(use.launchOptions);
  const page = await browser.newPage({ baseURL: use.baseURL });
  await signIn(page, admin.email, admin.password, admin.totpSecret);
  await expect(page).toHaveURL(/\/admin$/);
  fs.mkdirSync("test-results", { recursive: true });
  await page.context().storageState({ path: ADMIN_STATE });
  await browser.close();
}
