/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel interfaces gestor_containers uses that changed
 * between Linux 5.10 and 7.x, each behind one wrapper chosen by
 * LINUX_VERSION_CODE (Debian's kernels do not backport these changes) or,
 * where a stable update did backport one, by a feature test in Kbuild
 * (GC_HAVE_*), so that gestor_containers.c has no version test of its own.
 *
 * Tested against Debian's 5.10 (bullseye), 6.1 (bookworm), 6.12 (trixie)
 * and 7.2 (sid) headers.  Everything else the module calls exists with the
 * same meaning over that range.
 */
#ifndef GC_COMPAT_H
#define GC_COMPAT_H

#include <linux/dcache.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/namei.h>
#include <linux/string.h>
#include <linux/version.h>

/*
 * One page of @mm at @addr, referenced (put_page() it), or an error or 0
 * if there is none.  6.5 dropped the vmas argument of
 * get_user_pages_remote().
 */
static inline long gc_get_remote_page(struct mm_struct *mm, unsigned long addr,
				      unsigned int gup_flags, struct page **page)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 5, 0)
	return get_user_pages_remote(mm, addr, 1, gup_flags, page, NULL);
#else
	return get_user_pages_remote(mm, addr, 1, gup_flags, page, NULL, NULL);
#endif
}

/* Whether a VMA of @mm covers @addr (vma_lookup() came in 5.14). */
static inline bool gc_vma_at(struct mm_struct *mm, unsigned long addr)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 14, 0)
	return vma_lookup(mm, addr);
#else
	struct vm_area_struct *vma = find_vma(mm, addr);

	return vma && vma->vm_start <= addr;
#endif
}

/*
 * Copy @n bytes at @off of @page into @dst (kmap_local_page() came in
 * 5.11; before, kmap_atomic() is the mapping that does not sleep).
 */
static inline void gc_copy_from_page(void *dst, struct page *page, size_t off,
				     size_t n)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 11, 0)
	void *kaddr = kmap_local_page(page);

	memcpy(dst, kaddr + off, n);
	kunmap_local(kaddr);
#else
	void *kaddr = kmap_atomic(page);

	memcpy(dst, kaddr + off, n);
	kunmap_atomic(kaddr);
#endif
}

/*
 * Resident pages of @mm, as /proc/<pid>/statm counts them: the exact sum of
 * the per-CPU counters where the kernel has get_mm_counter_sum() (a Kbuild
 * feature test: it came with /proc's use of it in 6.16 and in stable
 * updates of older kernels), the cheaper approximation before, as /proc
 * then.
 */
static inline unsigned long gc_mm_rss(struct mm_struct *mm)
{
#ifdef GC_HAVE_MM_COUNTER_SUM
	return get_mm_counter_sum(mm, MM_FILEPAGES) +
	       get_mm_counter_sum(mm, MM_ANONPAGES) +
	       get_mm_counter_sum(mm, MM_SHMEMPAGES);
#else
	return get_mm_rss(mm);
#endif
}

/*
 * The dentry of @name in the directory @base, referenced (dput() it), or an
 * ERR_PTR if there is none.  6.16 renamed lookup_positive_unlocked() to
 * lookup_noperm_positive_unlocked(), which takes a qstr.
 */
static inline struct dentry *gc_lookup_positive(struct dentry *base,
						const char *name)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 16, 0)
	struct qstr qname = QSTR_INIT(name, strlen(name));

	return lookup_noperm_positive_unlocked(&qname, base);
#else
	return lookup_positive_unlocked(name, base, strlen(name));
#endif
}

#endif /* GC_COMPAT_H */
