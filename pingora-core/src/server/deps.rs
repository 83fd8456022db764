//! Which services wait for which, kept free of cycles.

/// For each service (by index), the services it waits for.
#[derive(Debug, Default, Clone)]
pub(crate) struct Dependencies {
    waits_for: Vec<Vec<usize>>,
}

impl Dependencies {
    /// Make room for one more service.
    pub(crate) fn add_service(&mut self) {
        self.waits_for.push(Vec::new());
    }

    /// Record that `service` waits for `on`.
    pub(crate) fn add(&mut self, service: usize, on: usize) -> Result<(), &'static str> {
        if service >= self.waits_for.len() || on >= self.waits_for.len() {
            return Err("unknown service");
        }
        if self.reaches(on, service) {
            return Err("that would be a cycle");
        }
        if !self.waits_for[service].contains(&on) {
            self.waits_for[service].push(on);
        }
        Ok(())
    }

    /// The services `service` waits for.
    pub(crate) fn of(&self, service: usize) -> &[usize] {
        self.waits_for.get(service).map_or(&[], Vec::as_slice)
    }

    /// Whether `from` waits, directly or not, for `to` (or is `to`).
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = vec![false; self.waits_for.len()];
        let mut stack = vec![from];
        while let Some(i) = stack.pop() {
            if i == to {
                return true;
            }
            if !std::mem::replace(&mut seen[i], true) {
                stack.extend(self.of(i).iter().copied());
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(n: usize) -> Dependencies {
        let mut deps = Dependencies::default();
        (0..n).for_each(|_| deps.add_service());
        deps
    }

    #[test]
    fn chain_and_cycles() {
        let mut deps = with(3);
        deps.add(2, 1).unwrap();
        deps.add(1, 0).unwrap();
        deps.add(2, 1).unwrap();
        assert_eq!(deps.of(2), &[1]);
        assert!(deps.add(0, 2).is_err());
        assert!(deps.add(1, 1).is_err());
        assert!(deps.add(0, 3).is_err());
        assert!(deps.of(7).is_empty());
    }

    proptest::proptest! {
        // Whatever edges are asked for, the accepted ones never form a cycle.
        #[test]
        fn never_a_cycle(edges in proptest::collection::vec((0usize..6, 0usize..6), 0..30)) {
            let mut deps = with(6);
            for (a, b) in edges {
                let _ = deps.add(a, b);
            }
            for i in 0..6 {
                for &j in deps.of(i) {
                    proptest::prop_assert!(!deps.reaches(j, i));
                }
            }
        }
    }
}
