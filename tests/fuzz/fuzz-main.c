/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Corpus replay for builds without libFuzzer: run LLVMFuzzerTestOneInput() on every file named
 * on the command line (directories are walked one level deep), so `meson test --suite fuzz`
 * keeps each target's corpus and its past crashers passing in the normal build.
 */
#include <stdint.h>
#include <stdio.h>
#include <glib.h>

int LLVMFuzzerInitialize (int *argc, char ***argv) __attribute__((weak));
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
compare_paths (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const char *const *) a, *(const char *const *) b);
}

static int
run_file (const char *path)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *data = NULL;
  gsize len;

  if (!g_file_get_contents (path, &data, &len, &error)) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  /* A copy of exactly len bytes, so ASan catches reads past the input as libFuzzer would. */
  {
    g_autofree uint8_t *copy = g_memdup2 (data, len);
    LLVMFuzzerTestOneInput (copy, len);
  }
  return 0;
}

int
main (int argc, char **argv)
{
  int failed = 0, n = 0;

  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize (&argc, &argv);
  for (int i = 1; i < argc; i++) {
    if (g_file_test (argv[i], G_FILE_TEST_IS_DIR)) {
      g_autoptr (GDir) d = g_dir_open (argv[i], 0, NULL);
      g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
      const char *name;
      while (d && (name = g_dir_read_name (d)))
        g_ptr_array_add (names, g_build_filename (argv[i], name, NULL));
      g_ptr_array_sort (names, compare_paths);
      for (guint j = 0; j < names->len; j++, n++)
        failed |= run_file (g_ptr_array_index (names, j));
    } else {
      failed |= run_file (argv[i]);
      n++;
    }
  }
  printf ("%d inputs replayed\n", n);
  return failed;
}
