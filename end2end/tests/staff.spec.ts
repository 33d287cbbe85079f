import { test, expect } from "@playwright/test";
import { adminPage, checkA11y, hydrated, signIn, totpAt, unique } from "./helpers";

test("an admin invites staff, who choose a password and set up two-step verification", async ({ browser, page }) => {
  const email = `${unique("sipho")}@example.com`;
  const admin = await adminPage(browser);
  await admin.goto("/admin/people");
  await hydrated(admin);
  await admin.getByLabel("Name", { exact: true }).fill("Sipho Dlamini");
  await admin.getByLabel("Email", { exact: true }).fill(email);
  await admin.getByRole("button", { name: "Send invitation" }).click();
  await expect(admin.getByRole("status")).toContainText("Invitation sent");
  await checkA11y(admin);

  await admin.goto("/admin/mail");
  const message = admin.locator("li.mail", { hasText: email }).first();
  await expect(async () => {
    await admin.reload();
    await expect(message).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  await message.locator("summary").click();
  const link = (await message.locator("pre.mail-text").innerText()).match(/https?:\/\/\S+\/accept-invitation\?token=[0-9a-f]+/)![0];

  await page.goto(new URL(link).pathname + new URL(link).search);
  await hydrated(page);
  await page.getByLabel("Password").fill("sipho's long walk to the stoep");
  await page.getByRole("button", { name: "Save and continue" }).click();
  await expect(page.getByRole("status")).toContainText("Your password is set");

  await signIn(page, email, "sipho's long walk to the stoep");
  await expect(page).toHaveURL(/\/account\/security$/);
  await page.getByRole("button", { name: "Show my set-up key" }).click();
  const secret = (await page.getByTestId("totp-secret").innerText()).trim();
  const step = Math.floor(Date.now() / 30_000);
  await page.getByLabel("Code from the app").fill(totpAt(secret, step));
  await page.getByRole("button", { name: "Turn on two-step verification" }).click();
  await expect(page.getByText("Save these recovery codes now.")).toBeVisible();
  await expect(page.locator("ul.codes li")).toHaveCount(10);
  await checkA11y(page);

  // Next sign-in asks for a code (a later one: each code works once).
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.goto("/signin");
  await hydrated(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill("sipho's long walk to the stoep");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/signin\/verify/);
  await hydrated(page);
  await page.getByLabel("Code").fill(totpAt(secret, step + 1));
  await page.getByRole("button", { name: "Continue" }).click();
  await expect(page).toHaveURL(/\/account$/);
});
